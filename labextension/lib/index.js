// Highlights a notebook's %%go cells as Go and %%cpp cells as C++.
//
// A code cell's editor language follows its model's mimeType, which the
// notebook sets from the kernel's language (Python) for every cell. This
// plugin watches each code cell's first line and sets the mimeType of a
// cell-magic cell to its language's; when the notebook resets it (kernel
// change, new cells), the cell's own language is put back.
import { INotebookTracker } from '@jupyterlab/notebook';

const CELL_LANGUAGES = [
  { magic: /^\s*%%go(?![\w-])/, mimeType: 'text/x-go' },
  { magic: /^\s*%%cpp(?![\w-])/, mimeType: 'text/x-c++src' }
];
const OWN_MIMETYPES = new Set(CELL_LANGUAGES.map(language => language.mimeType));

/** The mimeType a cell's text asks for, or null to keep the notebook's. */
export function cellMimeType(source) {
  const firstLine = source.replace(/^(\s*\n)*/, '').split('\n', 1)[0];
  const found = CELL_LANGUAGES.find(language => language.magic.test(firstLine));
  return found ? found.mimeType : null;
}

function follow(notebook, model) {
  if (model.type !== 'code' || model.__ipolyglotFollowed) {
    return;
  }
  model.__ipolyglotFollowed = true;
  const apply = () => {
    const wanted = cellMimeType(model.sharedModel.getSource());
    if (wanted !== null) {
      if (model.mimeType !== wanted) {
        model.mimeType = wanted;
      }
    } else if (OWN_MIMETYPES.has(model.mimeType) && notebook.codeMimetype) {
      model.mimeType = notebook.codeMimetype;
    }
  };
  model.contentChanged.connect(apply);
  model.mimeTypeChanged.connect(apply);
  apply();
}

function watch(panel) {
  const notebook = panel.content;
  const followAll = () => {
    if (notebook.model) {
      for (const model of notebook.model.cells) {
        follow(notebook, model);
      }
    }
  };
  notebook.modelChanged.connect(() => {
    followAll();
    if (notebook.model) {
      notebook.model.cells.changed.connect(followAll);
    }
  });
  if (notebook.model) {
    notebook.model.cells.changed.connect(followAll);
  }
  followAll();
}

const plugin = {
  id: 'ipolyglot-highlight:plugin',
  description: 'Highlights %%go cells as Go and %%cpp cells as C++.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app, tracker) => {
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_, panel) => watch(panel));
  }
};

export default plugin;
